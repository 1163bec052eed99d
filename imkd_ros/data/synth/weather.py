"""How each weather of the synthetic world degrades each sensor.

Rain, fog and night degrade the camera (contrast, noise, visibility) and the LiDAR (range, dropouts, intensity) much
more than the radar, which is the physical reason radar-camera fusion matters. Night does not affect the LiDAR (an
active sensor) and fog affects it strongly (scattering).
"""

from __future__ import annotations

from dataclasses import dataclass

from imkd_ros.data.synth.world import WEATHERS

__all__ = ["WeatherEffects", "WEATHER_EFFECTS", "weather_effects"]


@dataclass(frozen=True)
class WeatherEffects:
    """Sensor degradation parameters of one weather.

    Camera attributes:
        visibility_m: meteorological visibility (m): at this distance haze leaves 5 % of the contrast.
        haze_rgb: colour that distant surfaces fade into (0-255).
        sky_top_rgb, sky_horizon_rgb: sky gradient colours (0-255).
        ambient: global light level multiplier (1 by day; small at night).
        headlights: whether the ego's headlights (and other vehicles' lamps) light the scene.
        contrast: contrast factor around the image mean (1 = unchanged).
        noise_std: sensor noise standard deviation in 0-255 units.
        rain_streaks: number of rain streaks drawn per image.
    LiDAR attributes:
        lidar_range_m: maximum range (m) for a bright (reflectance 1) target.
        lidar_extinction: atmospheric extinction coefficient (1/m); the two-way power loss is ``exp(-2 a r)``.
        lidar_dropout: probability that any return is lost.
        lidar_noise_m: range noise standard deviation (m).
        lidar_backscatter: fraction of rays that return a spurious near-range echo from droplets.
    Radar attributes:
        radar_noise_scale: multiplier of the radar's position / velocity noise.
        radar_extra_clutter: extra clutter returns per sweep.
    """

    visibility_m: float
    haze_rgb: tuple[float, float, float]
    sky_top_rgb: tuple[float, float, float]
    sky_horizon_rgb: tuple[float, float, float]
    ambient: float
    headlights: bool
    contrast: float
    noise_std: float
    rain_streaks: int
    lidar_range_m: float
    lidar_extinction: float
    lidar_dropout: float
    lidar_noise_m: float
    lidar_backscatter: float
    radar_noise_scale: float
    radar_extra_clutter: int


# One row per effect, one column per weather (the order of _COLUMNS), so that the weathers compare at a glance.
_COLUMNS = ("clear", "rain", "fog", "night")
# fmt: off
_EFFECTS: dict[str, tuple] = {
    #                    clear                   rain                    fog                     night
    "visibility_m":     (3000.0,                 600.0,                  70.0,                   1500.0),
    "haze_rgb":         ((205.0, 215.0, 228.0),  (150.0, 155.0, 162.0),  (182.0, 185.0, 188.0),  (8.0, 9.0, 14.0)),
    "sky_top_rgb":      ((95.0, 140.0, 205.0),   (120.0, 125.0, 135.0),  (182.0, 185.0, 188.0),  (4.0, 5.0, 12.0)),
    "sky_horizon_rgb":  ((195.0, 212.0, 232.0),  (160.0, 165.0, 172.0),  (182.0, 185.0, 188.0),  (16.0, 17.0, 26.0)),
    "ambient":          (1.0,                    0.75,                   0.85,                   0.10),
    "headlights":       (False,                  False,                  False,                  True),
    "contrast":         (1.0,                    0.7,                    0.8,                    1.0),
    "noise_std":        (2.0,                    5.0,                    3.0,                    7.0),
    "rain_streaks":     (0,                      900,                    0,                      0),
    "lidar_range_m":    (100.0,                  75.0,                   40.0,                   100.0),
    "lidar_extinction": (0.0,                    0.004,                  0.03,                   0.0),
    "lidar_dropout":    (0.02,                   0.12,                   0.25,                   0.02),
    "lidar_noise_m":    (0.02,                   0.03,                   0.04,                   0.02),
    "lidar_backscatter": (0.0,                   0.002,                  0.01,                   0.0),
    "radar_noise_scale": (1.0,                   1.2,                    1.0,                    1.0),
    "radar_extra_clutter": (0,                   6,                      0,                      0),
}
# fmt: on

#: Weather name -> its sensor effects.
WEATHER_EFFECTS: dict[str, WeatherEffects] = {
    name: WeatherEffects(**{field: row[i] for field, row in _EFFECTS.items()}) for i, name in enumerate(_COLUMNS)
}


def weather_effects(weather: str) -> WeatherEffects:
    """The :class:`WeatherEffects` of ``weather``; ValueError naming the known weathers otherwise."""
    try:
        return WEATHER_EFFECTS[weather]
    except KeyError:
        raise ValueError(f"unknown weather {weather!r}: expected one of {', '.join(WEATHERS)}") from None
