"""Benchmark of `raysweep coco` at the scale of COCO train2017: time and peak memory.

    python benchmarks/bench_coco.py                 # ~450 MB JSON, 118k images, 860k boxes
    python benchmarks/bench_coco.py --images 5000   # quick look at a smaller scale

What it generates (in a temporary folder, removed afterwards unless --keep):
- a COCO instances JSON shaped like instances_train2017.json: polygon segmentations sized so that the
  file is about as large as the real one, ~1% crowd annotations with RLE masks, 80 categories, and a
  mix of single and repeated categories per image that gives about as many single-instance questions
  as the paper's full train set (~161k);
- one JPEG file per image, of the annotated size: one of three small encoded JPEGs (640x480,
  480x640, 640x427) followed by --padding-kb of random bytes after its end marker, so every file is
  distinct and incompressible (decoders ignore bytes after the end marker). Every file is opened, its
  header checked and its bytes read and written to Parquet, as in a real build; but the files are
  smaller than COCO's (~160 KB) and were just written (page cache), so reading COCO's 19 GB from a
  cold disk is NOT measured here: that part is I/O-bound, budget 19 GB / disk throughput on top.

Each build runs as a child process (the real CLI); its wall time and peak RSS (ru_maxrss from wait4)
are printed as a Markdown table row for the README.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(640, 480), (480, 640), (640, 427)]


def write_images(folder: Path, n_images: int, padding_kb: int) -> list[tuple[int, int]]:
    """One distinct JPEG file per image; returns the (width, height) of every image."""
    folder.mkdir(parents=True)
    encoded = []
    for w, h in SIZES:
        ramp = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
        buffer = io.BytesIO()
        Image.fromarray(ramp).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    sizes = []
    for i in range(n_images):
        k = i % len(SIZES)
        (folder / f"{i + 1:012d}.jpg").write_bytes(encoded[k] + os.urandom(padding_kb * 1024))
        sizes.append(SIZES[k])
    return sizes


def write_annotations(path: Path, sizes: list[tuple[int, int]], n_annotations: int, seed: int = 0) -> dict:
    """Stream a COCO-format JSON; returns counts of what it holds."""
    rng = np.random.default_rng(seed)
    n_images = len(sizes)
    per_image = n_annotations / n_images
    ann_id = 0
    singles = 0
    with open(path, "w") as fh:
        fh.write('{"info": {"description": "raysweep benchmark, generated"}, "licenses": [], "images": [')
        fh.write(", ".join(
            json.dumps({"license": 1, "file_name": f"{i + 1:012d}.jpg", "coco_url": "", "height": h, "width": w,
                        "date_captured": "2013-11-14 16:28:13", "flickr_url": "", "id": i + 1})
            for i, (w, h) in enumerate(sizes)
        ))  # fmt: skip
        fh.write('], "annotations": [')
        first = True
        for i, (w, h) in enumerate(sizes):
            # Distinct categories per image (1..5); each single with p=0.45, else repeated 2..5 times:
            # about 7.3 boxes and 1.36 single-instance questions per image, as in train2017.
            n_cats = int(rng.integers(1, 6))
            cats = rng.choice(80, size=n_cats, replace=False) + 1
            counts = np.where(rng.random(n_cats) < 0.45, 1, rng.integers(2, 6, size=n_cats))
            scale = per_image / 7.3
            chunks = []
            for cat, count in zip(cats, counts):
                count = max(1, int(round(count * scale))) if count > 1 else 1
                singles += count == 1
                for _ in range(count):
                    ann_id += 1
                    bw, bh = rng.uniform(4, w * 0.6), rng.uniform(4, h * 0.6)
                    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
                    crowd = count > 1 and rng.random() < 0.012
                    if crowd:
                        seg = {"counts": rng.integers(0, 400, size=int(rng.integers(20, 120))).tolist(), "size": [h, w]}
                        seg_text = json.dumps(seg)
                    else:
                        pts = rng.uniform(0, 1, size=2 * int(rng.integers(8, 40)))
                        pts[0::2] = x + pts[0::2] * bw
                        pts[1::2] = y + pts[1::2] * bh
                        seg_text = "[[" + ", ".join(f"{v:.2f}" for v in pts) + "]]"
                    chunks.append(
                        f'{{"segmentation": {seg_text}, "area": {bw * bh * 0.6:.4f}, "iscrowd": {int(crowd)}, '
                        f'"image_id": {i + 1}, "bbox": [{x:.2f}, {y:.2f}, {bw:.2f}, {bh:.2f}], '
                        f'"category_id": {int(cat)}, "id": {ann_id}}}'
                    )
            fh.write(("" if first else ", ") + ", ".join(chunks))
            first = False
        fh.write('], "categories": [')
        fh.write(", ".join(json.dumps({"supercategory": "thing", "id": c, "name": f"category {c:02d}"}) for c in range(1, 81)))
        fh.write("]}")
    return {"images": n_images, "annotations": ann_id, "single_instance_pairs": singles, "bytes": path.stat().st_size}


def run_child(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit code) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read().decode()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if out.strip():
        print("   ", out.strip().splitlines()[-1][:300])
    return wall, usage.ru_maxrss / 1024, proc.returncode


PLAIN_LOAD = "import json, sys; d = json.load(open(sys.argv[1], 'rb')); print(len(d['annotations']), 'annotations')"
SLIM_LOAD = (
    "import sys; from raysweep.datasets.coco import load_annotations; i = load_annotations(sys.argv[1]); "
    "print(i.n_annotations, 'annotations, indexed')"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=118_287, help="images in the generated file (train2017: 118,287)")
    parser.add_argument("--annotations", type=int, default=860_001, help="boxes in the generated file (train2017: 860,001)")
    parser.add_argument("--padding-kb", type=int, default=12, help="random bytes after each JPEG's end marker (distinct, incompressible files)")
    parser.add_argument("--workdir", default=None, help="folder for the generated files (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_coco_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        sizes = write_images(work / "images", args.images, args.padding_kb)
        stats = write_annotations(work / "instances_train2017.json", sizes, args.annotations)
        jpeg_mb = sum(p.stat().st_size for p in (work / "images").iterdir()) / 1e6
        print(f"generated in {time.perf_counter() - t0:.0f} s: {stats['images']:,} images, {stats['annotations']:,} boxes, "
              f"{stats['bytes'] / 1e6:.0f} MB JSON, {stats['single_instance_pairs']:,} single-instance (image, category) pairs, {jpeg_mb:,.0f} MB of JPEG files")  # fmt: skip
        ann = str(work / "instances_train2017.json")
        cli = [sys.executable, "-m", "raysweep.cli", "coco", "--quiet", "--annotations", ann, "--images", str(work / "images")]
        runs = [
            ("json.load only (plain, for reference)", [sys.executable, "-c", PLAIN_LOAD, ann]),
            ("load + validate + index (segmentation dropped while parsing)", [sys.executable, "-c", SLIM_LOAD, ann]),
            ("`raysweep coco` full set", [*cli, "--out", str(work / "full")]),
            ("`raysweep coco --balanced`", [*cli, "--balanced", "--out", str(work / "balanced")]),
        ]
        print("| step | wall s | peak RSS MiB |")
        print("|---|---:|---:|")
        for name, argv in runs:
            wall, rss, rc = run_child(argv)
            if rc:
                print(f"{name}: exit {rc}", file=sys.stderr)
                return rc
            print(f"| {name} | {wall:.1f} | {rss:,.0f} |", flush=True)
        for name in ("full", "balanced"):
            manifest = json.loads((work / name / "manifest.json").read_text())
            size = sum(p.stat().st_size for p in (work / name).glob("part-*.parquet"))
            print(f"{name}: {manifest['rows']:,} questions, {size / 1e6:,.0f} MB Parquet, per area {manifest['area_counts']}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
