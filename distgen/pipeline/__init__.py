"""The methods developer's workflow: experiments (train -> predict -> evaluate), sweeps, quickstart."""
