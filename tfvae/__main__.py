"""`python -m tfvae`: the same as the `tfvae` command."""

from tfvae.cli import main

raise SystemExit(main())
