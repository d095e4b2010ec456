"""The adapters: the only modules that speak to the outside (DynamoDB, S3, SNS, STS, Secrets Manager and SSM, the CI
systems and alert endpoints over HTTP) and the in-memory stand-ins of the stores. They implement the domain's
interfaces and import the domain, never the services (``make lint`` checks it)."""
