from tinyarms.cli import main

raise SystemExit(main())
