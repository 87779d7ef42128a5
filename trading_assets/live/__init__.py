"""Live and paper trading: the local venue, and the long-running services that trade through a venue."""
