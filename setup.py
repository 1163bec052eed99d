"""ament_python setup for imkd_ros (also installs with plain pip into a virtual environment)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "imkd_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["imkd_ros", "imkd_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        (
            "share/" + package_name + "/config",
            glob("config/*.yaml") + glob("config/*.json") + glob("config/*.xml") + glob("config/*.rviz"),
        ),
        ("share/" + package_name + "/models", glob("models/*.pt") + glob("models/*.md")),
        ("share/" + package_name + "/msg", glob("msg/*.msg")),
        *(
            ("share/" + package_name + f"/msg/{standin}/msg", glob(f"msg/{standin}/msg/*.msg"))
            for standin in ("vision_msgs", "autoware_perception_msgs", "tf2_msgs")
        ),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="imkd_ros maintainers",
    maintainer_email="imkd-ros@users.noreply.github.com",
    description="IMKD: intensity-aware multi-level knowledge distillation for camera-radar 3D detection, on ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "imkd = imkd_ros.cli:main",
            "detector_node = imkd_ros.nodes.detector_node:main",
            "detector_lifecycle_node = imkd_ros.nodes.detector_lifecycle_node:main",
            "teacher_node = imkd_ros.nodes.teacher_node:main",
        ],
    },
)
