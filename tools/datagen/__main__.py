"""``python -m tools.datagen``: regenerate the committed dataset and evalset."""

from tools.datagen.generate import main

raise SystemExit(main())
