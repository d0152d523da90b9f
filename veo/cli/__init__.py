"""The ``veo`` command: ``veo.cli.app`` builds it; one module per family of commands."""


def main() -> None:
    from veo.cli.app import main as run

    run()
