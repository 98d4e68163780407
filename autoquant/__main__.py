from autoquant.cli import main

raise SystemExit(main())
