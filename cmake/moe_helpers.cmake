# moe_add_library(<name> SOURCES ... DEPS ...): one library per folder; DEPS is exactly the set of
# folders (and external libraries) it may include.
function(moe_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# moe_add_test(<name> SOURCES ... DEPS ... [LABELS ...] [PREFIX p]): a GoogleTest binary registered
# with CTest. PREFIX keeps test names unique when one suite is built twice (emulated and GPU).
function(moe_add_test name)
  cmake_parse_arguments(ARG "" "PREFIX" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  include(GoogleTest)
  set(properties ENVIRONMENT "MOESERVE_BIN=${CMAKE_BINARY_DIR}/bin/moeserve")
  if(ARG_LABELS)
    list(APPEND properties LABELS "${ARG_LABELS}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_PREFIX "${ARG_PREFIX}"
                       PROPERTIES ${properties})
endfunction()
