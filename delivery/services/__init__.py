"""The delivery app's services: plan, publish, claim-and-send, sweep, devices."""
