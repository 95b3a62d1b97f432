"""One file per engine backend; each wraps a real model behind a small, blocking interface.

The pipeline runs these calls off the event loop, one worker thread per engine.
"""
