"""An offline voice assistant: wake word, speech, templates or an LLM, MQTT, spoken replies."""

__version__ = "0.1.0"
