from tflock_reaper.cli import main

raise SystemExit(main())
