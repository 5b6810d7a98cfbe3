# source benchmarks/wider_pool.sh: the X5 overrides (README, Tasks, "It learns", item 6) in the array X5.
# relative_train_wide.yaml's pool plus five colours that the test split never uses (olive, teal, navy,
# brown, pink) on every shape: 50 combinations, 20,160 training scenes. Still held out from
# relative_test.yaml: no test combination in it, the six test colours still only on a plus.
X5=("data.colors={red: [255, 0, 0], green: [0, 255, 0], blue: [0, 0, 255], magenta: [255, 0, 255], yellow: [255, 255, 0], cyan: [0, 255, 255], white: [255, 255, 255], orange: [255, 128, 0], purple: [128, 0, 255], grey: [128, 128, 128], olive: [128, 128, 0], teal: [0, 128, 128], navy: [0, 0, 128], brown: [139, 69, 19], pink: [255, 192, 203]}"
"data.combos=[{shapes: [circle, square, triangle, star], colors: [white]}, {shapes: [plus], colors: [red, green, blue, magenta, yellow, cyan]}, {shapes: [circle, square, triangle, star, plus], colors: [orange, purple, grey, olive, teal, navy, brown, pink]}]")
