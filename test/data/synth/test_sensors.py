"""The synthetic world's sensors: rig, camera renderer, LiDAR ray caster and radar simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from imkd_ros.core.classes import CLASSES
from imkd_ros.core.types import Boxes
from imkd_ros.data.pcd import RADAR_PCD_DTYPE, radar_default_mask
from imkd_ros.data.synth.camera import GROUND_RGB, render_camera
from imkd_ros.data.synth.lidar import (
    BEAM_ELEVATIONS_DEG,
    MATERIALS,
    SOURCE_GROUND,
    axis_distance,
    ground_material,
    lidar_sweep,
    slab_intersect,
    thin_shape,
)
from imkd_ros.data.synth.radar import SOURCE_CLUTTER, SOURCE_GHOST, radar_sweep, simulate_radar
from imkd_ros.data.synth.rig import KEYFRAME_HZ, RATES_HZ, RIG
from imkd_ros.data.synth.weather import WEATHER_EFFECTS, weather_effects
from imkd_ros.data.synth.world import CLASS_PROFILES, WEATHERS, Scenario, _Track, make_scenario

CAM, LIDAR, RADAR = RIG["CAM_FRONT"], RIG["LIDAR_TOP"], RIG["RADAR_FRONT"]


def _track(cls: str, x: float, y: float, yaw: float = 0.0, speed: float = 0.0, size=None) -> _Track:
    """An actor in the road frame (the ego starts at road (0, -1.75) facing +x)."""
    prof = CLASS_PROFILES[cls]
    return _Track(
        label=CLASSES.index(cls),
        size=np.asarray(size if size is not None else prof.size, dtype=np.float64),
        xy0=np.array([x, y], dtype=np.float64),
        yaw=yaw,
        speed=speed,
        reflectivity=prof.reflectivity,
        rcs=prof.rcs,
        color=np.asarray(prof.color, dtype=np.uint8),
        attribute=None,
    )


def _scene(tracks: list[_Track], weather: str = "clear", ego_speed: float = 0.0, facades: bool = False) -> Scenario:
    """A hand-made scenario on the procedural road: only the given actors, optionally the background facades."""
    base = make_scenario(0, 0, weather, 10.0)
    background = base.background if facades else Boxes.empty("road")
    return dataclasses.replace(base, tracks=tuple(tracks), background=background, ego_speed=ego_speed)


def _to_ego(calib, xyz: np.ndarray) -> np.ndarray:
    return calib.sensor_to_ego.apply(np.asarray(xyz, dtype=np.float64))


# -- rig and weather ---------------------------------------------------------------------------------------------


def test_rig_mountings_follow_nuscenes_conventions():
    assert set(RIG) == {"CAM_FRONT", "RADAR_FRONT", "LIDAR_TOP"} == set(RATES_HZ)
    assert KEYFRAME_HZ == 2 and RATES_HZ["LIDAR_TOP"] == 20
    # A point straight ahead at the camera's height projects onto the principal point, in front of the camera.
    uv, depth = CAM.project(np.array([[11.70, 0.02, 1.51]]))
    np.testing.assert_allclose(uv[0], CAM.intrinsic[:2, 2], atol=1e-6)
    assert depth[0] == pytest.approx(10.0)
    # A point above the camera projects above the principal point (v smaller), one on its left to the left.
    uv, _ = CAM.project(np.array([[11.70, 1.02, 2.51]]))
    assert uv[0, 0] < CAM.intrinsic[0, 2] and uv[0, 1] < CAM.intrinsic[1, 2]
    # LIDAR_TOP: sensor x is the ego's right, y forward; RADAR_FRONT: ego axes.
    np.testing.assert_allclose(
        LIDAR.sensor_to_ego.rotate(np.array([[1.0, 0, 0], [0, 1.0, 0]])), [[0, -1, 0], [1, 0, 0]], atol=1e-12
    )
    np.testing.assert_allclose(RADAR.sensor_to_ego.rotation, np.eye(3))


def test_weather_effects_cover_every_weather_and_reject_unknown():
    assert set(WEATHER_EFFECTS) == set(WEATHERS)
    clear, fog = weather_effects("clear"), weather_effects("fog")
    assert fog.lidar_range_m < 0.5 * clear.lidar_range_m and fog.visibility_m < 0.1 * clear.visibility_m
    with pytest.raises(ValueError, match="snow"):
        weather_effects("snow")


def test_ground_material_lays_out_the_road():
    code = ground_material(
        np.array([0.0, 1.0, 5.0, 1.0, 0.0, 0.0, 0.0]), np.array([-1.75, 3.5, 3.5, -6.85, 0.1, 11.0, 30.0])
    )
    names = [MATERIALS[c] for c in code]
    assert names == ["asphalt", "white_paint", "asphalt", "white_paint", "yellow_paint", "sidewalk", "lot"]
    assert len(GROUND_RGB) == len(MATERIALS)


def test_slab_intersect_entry_exit_and_face():
    # rays from x = -5 against a 2 x 1 x 1 box (half extents 1, 0.5, 0.5) at the origin
    dx, dy, dz = np.array([1.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.zeros(3)
    hits = slab_intersect((-5.0, np.array([0.0, 0.7, 0.0]), 0.0), dx, dy, dz, (1.0, 0.5, 0.5))
    assert hits.hit().tolist() == [True, False, False]  # the 2nd passes beside, the 3rd runs along +y at x = -5
    assert hits.t_near[0] == pytest.approx(4.0) and hits.t_far[0] == pytest.approx(6.0)
    assert hits.axis(hits.hit()).tolist() == [0]


def test_thin_shapes_keep_rays_near_their_axis():
    ped = CLASSES.index("pedestrian")
    size = np.array([0.67, 0.73, 1.77])
    # horizontal rays along +x entering the box's -x face at y offsets 0, 0.3 (torso edge) and heights
    ly = np.array([0.0, 0.3, 0.0, 0.3, 0.0])
    up = np.array([1.2, 1.2, 1.7, 1.7, 0.4])  # torso, torso, head, head, legs (between them)
    local = [np.full(5, -0.365), ly, up - 1.77 / 2]
    keep, depth = thin_shape(ped, size, True, local, (np.ones(5), np.zeros(5)))
    assert keep.tolist() == [True, True, True, False, False]
    assert np.all(depth >= 0) and np.all(depth <= 0.365)
    assert axis_distance(np.array([0.0]), np.array([-1.0]), np.array([0.0]), np.array([1.0]), 0.5)[0] == 0.0
    assert axis_distance(np.array([2.0]), np.array([-1.0]), np.array([0.0]), np.array([1.0]), 0.5)[0] == 1.5


# -- LiDAR -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city() -> Scenario:
    return make_scenario(0, 2, "clear", 10.0)


@pytest.fixture(scope="module")
def city_sweep(city):
    return lidar_sweep(city, 1.0, LIDAR, np.random.default_rng(0))


def test_lidar_points_that_hit_an_actor_lie_inside_its_box(city, city_sweep):
    pts, src = city_sweep.points, city_sweep.source
    assert pts.dtype == np.float32 and pts.shape[1] == 5 and len(pts) == len(src)
    on = src >= 0
    assert on.sum() > 500
    inside = city.actors(1.0, "ego").boxes.contains(_to_ego(LIDAR, pts[on, :3]))
    assert inside[src[on], np.arange(on.sum())].all()
    # and a surface point is not trivially the box centre: most are within 10 cm of the entry face region
    assert 20000 < len(pts) < 36000


def test_lidar_ground_points_at_zero_height_in_ego_frame(city_sweep):
    ground = city_sweep.points[city_sweep.source == SOURCE_GROUND]
    assert len(ground) > 5000
    assert np.abs(_to_ego(LIDAR, ground[:, :3])[:, 2]).max() < 0.1


def test_lidar_rings_are_ordered_by_elevation(city_sweep):
    pts = city_sweep.points
    ring = pts[:, 4]
    assert np.array_equal(ring, np.round(ring)) and ring.min() == 0 and ring.max() == 31
    elev = np.degrees(np.arctan2(pts[:, 2], np.hypot(pts[:, 0], pts[:, 1])))
    per_ring = np.array([np.median(elev[ring == r]) for r in range(32)])
    assert np.all(np.diff(per_ring) > 0)
    np.testing.assert_allclose(per_ring, BEAM_ELEVATIONS_DEG, atol=0.01)
    assert pts[:, 3].min() >= 0 and pts[:, 3].max() <= 255


def test_lidar_cones_are_brighter_than_pedestrians():
    tracks = [_track("traffic_cone", 10.0 + 3 * k, -6.0 - 0.5 * k) for k in range(3)]
    tracks += [_track("pedestrian", 11.5 + 3 * k, -6.0 - 0.5 * k) for k in range(3)]
    scn = _scene(tracks)
    sweep = lidar_sweep(scn, 0.0, LIDAR, np.random.default_rng(1))
    inten = sweep.points[:, 3]
    cones, peds = np.isin(sweep.source, [0, 1, 2]), np.isin(sweep.source, [3, 4, 5])
    assert cones.sum() > 20 and peds.sum() > 20
    assert inten[cones].mean() > 2.0 * inten[peds].mean()


def test_fog_reduces_lidar_points_and_range(city):
    fog = dataclasses.replace(city, weather="fog")
    clear_pts = lidar_sweep(city, 1.0, LIDAR, np.random.default_rng(2)).points
    fog_pts = lidar_sweep(fog, 1.0, LIDAR, np.random.default_rng(2)).points
    r_clear, r_fog = np.hypot(clear_pts[:, 0], clear_pts[:, 1]), np.hypot(fog_pts[:, 0], fog_pts[:, 1])
    assert len(fog_pts) < 0.7 * len(clear_pts)
    assert r_fog.max() < 0.6 * r_clear.max()
    assert (r_fog > 25.0).sum() < 0.1 * (r_clear > 25.0).sum()
    assert fog_pts[:, 3].mean() < 0.7 * clear_pts[:, 3].mean()  # intensity attenuated


def test_lidar_visibility_drops_behind_a_bus():
    car = _track("car", 35.0, -1.75)
    alone = lidar_sweep(_scene([car]), 0.0, LIDAR, np.random.default_rng(3))
    bus = _track("bus", 18.0, -1.75, size=(2.94, 11.0, 3.47))
    hidden = lidar_sweep(_scene([car, bus]), 0.0, LIDAR, np.random.default_rng(3))
    for vis in (alone.visibility, hidden.visibility):
        assert np.all((vis >= 0.0) & (vis <= 1.0))
    assert alone.visibility[0] > 0.95
    assert hidden.visibility[0] < 0.5 * alone.visibility[0]
    assert hidden.visibility[1] > 0.95
    # an actor beyond any ray's reach has visibility 0
    far = lidar_sweep(_scene([_track("car", 300.0, -1.75)]), 0.0, LIDAR, np.random.default_rng(3))
    assert far.visibility[0] == 0.0


def test_lidar_is_deterministic_for_a_seed(city):
    a = lidar_sweep(city, 0.5, LIDAR, np.random.default_rng(9)).points
    b = lidar_sweep(city, 0.5, LIDAR, np.random.default_rng(9)).points
    c = lidar_sweep(city, 0.5, LIDAR, np.random.default_rng(10)).points
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# -- radar -------------------------------------------------------------------------------------------------------


def test_radar_counts_fields_and_states_are_plausible():
    counts, filtered = [], 0
    for index in range(5):
        scn = make_scenario(1, index, "clear", 10.0)
        pts = radar_sweep(scn, 2.0, RADAR, np.random.default_rng(index))
        assert pts.dtype == RADAR_PCD_DTYPE
        assert np.all(pts["z"] == 0.0) and np.all(np.isfinite(pts["x"]))
        assert np.all((pts["dyn_prop"] >= 0) & (pts["dyn_prop"] <= 7))
        assert len(np.unique(pts["id"])) == len(pts)
        keep = radar_default_mask(pts)
        counts.append(int(keep.sum()))
        filtered += int((~keep).sum())
        az = np.degrees(np.abs(np.arctan2(pts["y"], pts["x"])))
        assert np.all(az < 61.0) and np.all(pts["x"] > 0)
    assert all(5 <= c <= 250 for c in counts), counts
    assert filtered > 0


def _radial(vx, vy, x, y):
    r = np.hypot(x, y)
    return (vx * x + vy * y) / r


def test_radar_compensated_velocity_is_object_velocity_on_line_of_sight():
    ego_speed = 8.0
    oncoming = _track("car", 40.0, 1.75, yaw=np.pi, speed=10.0)
    crossing = _track("car", 25.0, 3.0, yaw=np.pi / 2, speed=5.0)
    scn = _scene([oncoming, crossing], ego_speed=ego_speed)
    seen = 0
    for k in range(8):
        t = 0.5 + 0.077 * k
        sw = simulate_radar(scn, t, RADAR, np.random.default_rng(k))
        vel = scn.actors(t, "ego").boxes.velocity  # ego frame = radar frame orientation
        for i in (0, 1):
            p = sw.points[sw.source == i]
            seen += len(p)
            los = np.stack([p["x"], p["y"]], axis=1) / np.hypot(p["x"], p["y"])[:, None]
            expect_comp = (los @ vel[i])[:, None] * los
            expect_raw = (los @ (vel[i] - np.array([ego_speed, 0.0])))[:, None] * los
            np.testing.assert_allclose(np.stack([p["vx_comp"], p["vy_comp"]], 1), expect_comp, atol=0.5)
            np.testing.assert_allclose(np.stack([p["vx"], p["vy"]], 1), expect_raw, atol=0.5)
            assert np.all(p["dyn_prop"] != 1)  # moving objects are not reported as stationary
    assert seen >= 8
    # returns lie inside (or very near) their object's box: most inside
    sw = simulate_radar(scn, 0.5, RADAR, np.random.default_rng(0))
    boxes = scn.actors(0.5, "ego").boxes
    on = sw.source >= 0
    pts = _to_ego(RADAR, np.stack([sw.points["x"], sw.points["y"], sw.points["z"]], 1)[on])
    assert boxes.contains(pts, margin=0.5)[sw.source[on], np.arange(on.sum())].all()


def test_radar_stationary_world_has_zero_compensated_velocity():
    ego_speed = 10.0
    scn = _scene(
        [_track("car", 30.0, -8.25), _track("truck", 45.0, 8.25, yaw=np.pi)], ego_speed=ego_speed, facades=True
    )
    n_static = 0
    for k in range(5):
        sw = simulate_radar(scn, 0.2 * k, RADAR, np.random.default_rng(k))
        p = sw.points[(sw.source >= 0) | (sw.source == SOURCE_CLUTTER)]
        n_static += len(p)
        v_comp = _radial(p["vx_comp"], p["vy_comp"], p["x"], p["y"])
        v_raw = _radial(p["vx"], p["vy"], p["x"], p["y"])
        cos_los = p["x"] / np.hypot(p["x"], p["y"])
        assert np.all(np.abs(v_comp) < 0.45)
        np.testing.assert_allclose(v_raw, -ego_speed * cos_los, atol=0.45)
        assert np.all(np.isin(p["dyn_prop"], [1, 3, 5]))
    assert n_static > 20
    assert (sw.source == SOURCE_GHOST).sum() <= 10


def test_radar_rcs_and_returns_follow_class_and_aspect():
    def returns(track: _Track) -> np.ndarray:
        scn = _scene([track])
        pts = [simulate_radar(scn, 0.0, RADAR, np.random.default_rng(k)) for k in range(30)]
        return np.concatenate([sw.points[sw.source == 0] for sw in pts])

    side, front = returns(_track("car", 30.0, -1.75, yaw=np.pi / 2)), returns(_track("car", 30.0, -1.75))
    assert side["rcs"].mean() > front["rcs"].mean() + 3.0
    bus, ped = returns(_track("bus", 20.0, -1.75, yaw=np.pi / 2)), returns(_track("pedestrian", 20.0, -1.75))
    assert len(bus) > 2 * len(ped) > 0
    assert bus["rcs"].mean() > ped["rcs"].mean() + 15.0


def test_fog_and_night_barely_change_the_radar():
    def mean_count(weather: str) -> float:
        n = []
        for index in range(4):
            scn = make_scenario(3, index, weather, 10.0)
            n.append(radar_default_mask(radar_sweep(scn, 1.0, RADAR, np.random.default_rng(index))).sum())
        return float(np.mean(n))

    clear = mean_count("clear")
    assert abs(mean_count("fog") - clear) <= 0.15 * clear
    assert abs(mean_count("night") - clear) <= 0.15 * clear
    assert abs(mean_count("rain") - clear) <= 0.3 * clear


# -- camera ------------------------------------------------------------------------------------------------------


def test_camera_image_shape_and_determinism(city):
    a = render_camera(city, 1.0, CAM, np.random.default_rng(0))
    b = render_camera(city, 1.0, CAM, np.random.default_rng(0))
    assert a.shape == (900, 1600, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 20.0  # not a plain image


def _box_rect(scn: Scenario, t: float, i: int) -> tuple[int, int, int, int]:
    corners = scn.actors(t, "ego").boxes.corners()[i]
    uv, depth = CAM.project(corners)
    assert np.all(depth > 0)
    u0, v0 = np.floor(uv.min(axis=0)).astype(int)
    u1, v1 = np.ceil(uv.max(axis=0)).astype(int)
    return max(u0, 0), min(u1, 1600), max(v0, 0), min(v1, 900)


def test_camera_shows_a_near_object_where_it_projects():
    empty = render_camera(_scene([]), 0.0, CAM, np.random.default_rng(0)).astype(np.float64)
    scn = _scene([_track("car", 12.0, -1.75)])
    img = render_camera(scn, 0.0, CAM, np.random.default_rng(0)).astype(np.float64)
    u0, u1, v0, v1 = _box_rect(scn, 0.0, 0)
    assert (u1 - u0) > 100 and (v1 - v0) > 60
    diff = np.abs(img - empty).mean(axis=2)
    inner = diff[v0 + 5 : v1 - 5, u0 + 5 : u1 - 5]
    assert inner.mean() > 25.0
    outside = np.ones_like(diff, bool)
    outside[max(v0 - 3, 0) : v1 + 3, max(u0 - 3, 0) : u1 + 3] = False
    assert np.median(diff[outside]) < 3.0


def test_fog_and_night_reduce_camera_contrast(city):
    std = {}
    for weather in ("clear", "fog", "night"):
        scn = dataclasses.replace(city, weather=weather)
        std[weather] = render_camera(scn, 1.0, CAM, np.random.default_rng(0)).astype(np.float64).std()
    assert std["fog"] < 0.8 * std["clear"]
    assert std["night"] < 0.9 * std["clear"]


def test_camera_zbuffer_puts_the_nearer_object_in_front():
    truck = _track("truck", 10.0, -1.75)  # white (220, 220, 225)
    bus = _track("bus", 25.0, -1.75)  # blue (40, 90, 190)
    # a pixel on the bus's back face (1.2 m above the ground, below its windows) that the truck hides
    back = np.array([[25.0 - CLASS_PROFILES["bus"].size[1] / 2.0 - 0.01, 0.0, 1.2]])
    uv, _ = CAM.project(back)
    u, v = np.round(uv[0]).astype(int)

    def patch(tracks: list[_Track]) -> np.ndarray:
        img = render_camera(_scene(tracks), 0.0, CAM, np.random.default_rng(0)).astype(np.float64)
        return img[v - 3 : v + 4, u - 3 : u + 4].reshape(-1, 3).mean(axis=0)

    bus_only, truck_only = patch([bus]), patch([truck])
    assert bus_only[2] > bus_only[0] + 50  # the bus alone is seen there
    assert np.abs(truck_only - bus_only).max() > 50
    for tracks in ([truck, bus], [bus, truck]):  # whatever the drawing order
        np.testing.assert_allclose(patch(tracks), truck_only, atol=1.0)


def test_sensors_reject_a_wrong_calibration(city):
    with pytest.raises(ValueError, match="LIDAR_TOP"):
        render_camera(city, 0.0, LIDAR, np.random.default_rng(0))
    with pytest.raises(ValueError, match="CAM_FRONT.*upright"):
        lidar_sweep(city, 0.0, CAM, np.random.default_rng(0))
    with pytest.raises(ValueError, match="CAM_FRONT.*upright"):
        radar_sweep(city, 0.0, CAM, np.random.default_rng(0))
