"""``python -m pipeline`` runs the same CLI as the ``rotoscope`` command."""

from pipeline.cli.main import main

if __name__ == "__main__":
    main()
