"""`python -m foldwise ...` is the same as the `foldwise` console script (and what torchrun launches)."""

from foldwise.cli import main

raise SystemExit(main())
