"""Entry points: the operator CLI, the deployed functions' settings, and the wiring that builds the real adapters and
hands them to the services (what ``functions/*`` call). The only room that imports every other."""
