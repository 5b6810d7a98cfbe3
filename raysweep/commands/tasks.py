"""raysweep tasks: the registered question types, their templates and answers."""

HELP = "List the registered tasks (data.task): question template, answers and bias index."


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", default=None, help="show one task (an unknown name gets the closest match)")


def run(args) -> int:
    from raysweep.tasks import list_tasks, task_class, task_from_config

    for name in [args.name] if args.name else list_tasks():
        cls = task_class(name)
        task = task_from_config({"task": name})
        bias = ", ".join(task.bias([], [])) or "-"
        print(f"{name}: {cls.description}")
        print(f"  template: {task.template}")
        print(f"  answers:  {', '.join(task.answer_names)}")
        print(f"  bias index: {bias}")
    return 0
