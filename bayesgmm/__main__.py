"""``python -m bayesgmm`` runs the command-line tool."""

from bayesgmm.cli import main

raise SystemExit(main())
