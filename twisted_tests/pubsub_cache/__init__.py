"""Tests of the pubsub cache plugin (PUBSUB_CACHE) and of the microblog analyser."""
