"""The services: the sweep, the reap protocol, holder-check orchestration, alerting and audit recording. They
orchestrate the domain through the interfaces it declares (``domain.ports``); the adapters that implement them are
passed in by ``entrypoints``. Services import the domain only (``make lint`` checks it)."""
