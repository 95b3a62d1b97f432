"""Simulated devices that behave like the real ones on the wire: a Zigbee2MQTT bridge, a Tasmota plug and
lights announced by Home Assistant discovery in the json and default schemas. They apply commands and
report state the way the real firmware does."""

from __future__ import annotations

import json
import threading

from assistant.mqtt_link import listener

Z2M_LIGHT = {"type": "light", "features": [{"name": "state"}, {"name": "brightness"}, {"name": "color_xy"}]}
Z2M_DEVICES = [
    {"ieee_address": "0x00", "type": "Coordinator", "friendly_name": "Coordinator", "definition": None},
    {"ieee_address": "0x01", "friendly_name": "hall ceiling", "definition": {"exposes": [Z2M_LIGHT]}},
    {"ieee_address": "0x02", "friendly_name": "hall spot", "definition": {"exposes": [Z2M_LIGHT]}},
    {"ieee_address": "0x03", "friendly_name": "coffee plug",
     "definition": {"exposes": [{"type": "switch", "features": [{"name": "state"}]}]}},
    {"ieee_address": "0x04", "friendly_name": "hall sensor",
     "definition": {"exposes": [{"type": "numeric", "name": "temperature"}]}},
]
Z2M_GROUPS = [{"id": 1, "friendly_name": "hall lights",
               "members": [{"ieee_address": "0x01", "endpoint": 1}, {"ieee_address": "0x02", "endpoint": 1}]}]

HA_JSON = ("homeassistant/light/esp/porch_light/config",
           {"name": "Porch light", "schema": "json", "cmd_t": "esphome/porch/light/set",
            "stat_t": "esphome/porch/light/state", "avty_t": "esphome/porch/status", "brightness": True,
            "bri_scl": 100, "supported_color_modes": ["rgb"], "uniq_id": "porch1",
            "dev": {"name": "Porch", "sa": "Garden"}})
HA_DEFAULT = ("homeassistant/light/desk_lamp/config",
              {"name": "Desk lamp", "~": "tasmota_desk", "cmd_t": "~/power/set", "stat_t": "~/power",
               "bri_cmd_t": "~/bri/set", "bri_stat_t": "~/bri", "bri_scl": 255, "pl_on": "1", "pl_off": "0",
               "uniq_id": "desk1"})


class Simulator:
    """All the simulated devices on one broker connection. `state[name]` is what each device is doing."""

    def __init__(self, url: str, tasmota_topic: str = "lounge_plug"):
        self.tasmota = tasmota_topic
        self.state = {"hall_ceiling": {"state": "OFF", "brightness": 254}, "hall_spot": {"state": "OFF", "brightness": 254},
                      "coffee_plug": {"state": "OFF"}, "tasmota": {"POWER": "OFF", "Dimmer": 100},
                      "porch": {"state": "OFF", "brightness": 100}, "desk": {"power": "0", "bri": 255}}
        self.received: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.c = listener(url, ["zigbee2mqtt/+/set", f"cmnd/{tasmota_topic}/+", "esphome/porch/light/set",
                                "tasmota_desk/+/set"], self._on_message)

    def announce(self, groups: bool = True, ha: bool = True, porch_online: bool = True) -> None:
        """Retained announcements and states, as the bridge and the firmware publish them at start-up."""
        pub = self.c.publish
        pub("zigbee2mqtt/bridge/devices", json.dumps(Z2M_DEVICES), qos=1, retain=True)
        if groups:
            pub("zigbee2mqtt/bridge/groups", json.dumps(Z2M_GROUPS), qos=1, retain=True)
        for fn in ("hall ceiling", "hall spot", "coffee plug"):
            pub(f"zigbee2mqtt/{fn}/availability", json.dumps({"state": "online"}), qos=1, retain=True)
        if ha:
            for topic, cfg in (HA_JSON, HA_DEFAULT):
                pub(topic, json.dumps(cfg), qos=1, retain=True)
            pub("esphome/porch/status", "online" if porch_online else "offline", qos=1, retain=True)
        pub(f"tele/{self.tasmota}/LWT", "Online", qos=1, retain=True)
        self._report_all()

    def _report_all(self):
        for dev in ("hall_ceiling", "hall_spot", "coffee_plug", "tasmota", "porch", "desk"):
            self._report(dev)

    def _report(self, dev: str) -> None:
        s = self.state[dev]
        if dev == "tasmota":
            self.c.publish(f"stat/{self.tasmota}/RESULT", json.dumps(s), qos=1)
        elif dev == "porch":
            self.c.publish("esphome/porch/light/state", json.dumps(s), qos=1, retain=True)
        elif dev == "desk":
            self.c.publish("tasmota_desk/power", s["power"], qos=1, retain=True)
            self.c.publish("tasmota_desk/bri", str(s["bri"]), qos=1, retain=True)
        else:
            self.c.publish(f"zigbee2mqtt/{dev.replace('_', ' ')}", json.dumps(s), qos=1)

    def _on_message(self, client, userdata, msg):
        topic, payload = msg.topic, msg.payload.decode()
        with self.lock:
            self.received.append((topic, payload))
        parts = topic.split("/")
        if parts[0] == "zigbee2mqtt":
            targets = ["hall_ceiling", "hall_spot"] if parts[1] == "hall lights" else [parts[1].replace(" ", "_")]
            for t in targets:
                self._apply_json(t, json.loads(payload))
        elif parts[0] == "cmnd":
            s = self.state["tasmota"]
            if parts[2] == "POWER":
                s["POWER"] = {"TOGGLE": "OFF" if s["POWER"] == "ON" else "ON"}.get(payload.upper(), payload.upper())
            elif parts[2] == "Dimmer":
                s["Dimmer"], s["POWER"] = int(payload), "ON" if int(payload) > 0 else "OFF"
            self._report("tasmota")
        elif parts[0] == "esphome":
            self._apply_json("porch", json.loads(payload))
        elif parts[0] == "tasmota_desk":
            s = self.state["desk"]
            if parts[1] == "power":
                s["power"] = payload
            else:
                s["bri"], s["power"] = int(payload), "1"
            self._report("desk")

    def _apply_json(self, dev: str, cmd: dict) -> None:
        if dev not in self.state:
            return  # a device this simulator does not play
        s = self.state[dev]
        if cmd.get("state") == "TOGGLE":
            cmd["state"] = "OFF" if s["state"] == "ON" else "ON"
        s.update({k: v for k, v in cmd.items() if k in ("state", "brightness", "color")})
        self._report(dev)

    def on(self, dev: str) -> bool:
        s = self.state[dev]
        return s.get("state", s.get("POWER", s.get("power"))) in ("ON", "1")

    def clear_retained(self) -> None:
        for t in ["zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/groups", HA_JSON[0], HA_DEFAULT[0],
                  "esphome/porch/status", "esphome/porch/light/state", "tasmota_desk/power", "tasmota_desk/bri",
                  f"tele/{self.tasmota}/LWT"] + [f"zigbee2mqtt/{fn}/availability" for fn in ("hall ceiling", "hall spot", "coffee plug")]:
            self.c.publish(t, "", qos=1, retain=True).wait_for_publish(2)

    def close(self):
        self.clear_retained()
        self.c.loop_stop()
        self.c.disconnect()
