# The CMake export files of the PyPI ros-* wheels name include directories under /opt/python/..., where the wheels
# were built; they do not exist on the machine that installs the wheels, and CMake refuses imported targets with
# non-existent include directories. Drop those entries from every imported target of the calling directory.
# Harmless on a regular ROS 2 install (no such entries).
function(imkd_strip_wheel_include_dirs)
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_t IN LISTS _targets)
    get_target_property(_dirs ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs)
      list(FILTER _dirs EXCLUDE REGEX "^/opt/python/")
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endforeach()
endfunction()
