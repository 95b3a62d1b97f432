"""One file per engine backend; each wraps a real model behind a small, blocking interface (the
Protocols in base.py; the LLM backends' in llm/base.py). load.py chooses and loads them from the config.

The pipeline runs these calls off the event loop, one worker thread per engine.
"""
