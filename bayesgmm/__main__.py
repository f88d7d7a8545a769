"""``python -m bayesgmm`` runs the command-line tool."""

from bayesgmm.app.cli import main

raise SystemExit(main())
