"""``python -m llmbt``: the ``bt`` command line."""

from llmbt.cli import main

if __name__ == "__main__":
    main()
