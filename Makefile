# imkd_ros developer entry points. Everything installs into a project-local virtual environment at .venv.
#   make demo   - the main job on the embedded synthetic default
#   make test   - lint + the whole test suite
#   make setup  - only the environment (idempotent; a second run takes seconds)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.imkd-setup-stamp
INTERFACES := $(VENV)/.imkd-interfaces-stamp
STANDINS := vision_msgs autoware_perception_msgs tf2_msgs
MSG_SOURCES := $(wildcard msg/*.msg $(foreach s,$(STANDINS),msg/$(s)/msg/*.msg)) msg/CMakeLists.txt msg/package.xml \
	$(foreach s,$(STANDINS),msg/$(s)/CMakeLists.txt msg/$(s)/package.xml) msg/cmake/strip_wheel_include_dirs.cmake \
	msg/build_interfaces.sh
DEMO_OUT ?= demo_out
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export AMENT_PREFIX_PATH := $(abspath $(VENV))$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))

.PHONY: setup demo test lint clean

setup: $(STAMP) $(INTERFACES)

$(STAMP): requirements.txt setup.py package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# ROS 2 interfaces (stand-ins of vision_msgs, autoware_perception_msgs and tf2_msgs where the real packages are not
# installed, imkd_msgs) built with rosidl into .venv; rebuilt only when a definition or the build files change.
$(INTERFACES): $(STAMP) $(MSG_SOURCES)
	bash msg/build_interfaces.sh $(VENV)
	@touch $(INTERFACES)

demo: setup
	$(VENV)/bin/imkd demo --out $(DEMO_OUT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q test

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
