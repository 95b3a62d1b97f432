"""Colour names people say, as RGB. The names match home-assistant-intents' colour list."""

COLORS = {
    "white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "orange": (255, 165, 0),
    "yellow": (255, 255, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "purple": (128, 0, 128),
    "brown": (165, 42, 42), "pink": (255, 192, 203), "turquoise": (64, 224, 208), "cyan": (0, 255, 255),
    "magenta": (255, 0, 255), "violet": (238, 130, 238), "gold": (255, 215, 0), "warm white": (255, 180, 107),
    "cool white": (200, 220, 255),
}


def rgb(name: str) -> tuple[int, int, int]:
    return COLORS[name.lower()]
