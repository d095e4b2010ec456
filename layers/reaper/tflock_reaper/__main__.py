from tflock_reaper.entrypoints.cli import main

raise SystemExit(main())
