# Helpers that give every lumen target the same shape: warnings (as errors
# with LUMEN_WERROR, which the developers' presets and CI set), optional
# sanitizers, one shared library per component.

set(LUMEN_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
# GCC 12 at -O3 reports -Wrestrict (and -Wstringop-overflow) inside
# libstdc++'s std::string for `"literal" + std::string` (GCC bugs 105329,
# 105651): false positives in code that is correct, so they are not errors.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12)
  list(APPEND LUMEN_WARNINGS -Wno-restrict -Wno-stringop-overflow)
endif()
if(LUMEN_WERROR)
  list(APPEND LUMEN_WARNINGS -Werror)
endif()

function(lumen_apply_sanitizers target)
  if(LUMEN_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${LUMEN_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${LUMEN_SANITIZE})
  endif()
endfunction()

function(lumen_common_options target)
  target_compile_options(${target} PRIVATE ${LUMEN_WARNINGS})
  target_compile_definitions(${target} PRIVATE MSGPACK_NO_BOOST SPDLOG_ACTIVE_LEVEL=SPDLOG_LEVEL_DEBUG)
  lumen_apply_sanitizers(${target})
endfunction()

# lumen_library(NAME SRCS ... DEPS ... PRIVATE_DEPS ...)
# One shared library per component; internal headers are included as
# "component/file.h" from the source root.
function(lumen_library name)
  cmake_parse_arguments(L "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} SHARED ${L_SRCS})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  set_target_properties(${name} PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  lumen_common_options(${name})
  set_property(GLOBAL APPEND PROPERTY LUMEN_INSTALL_LIBS ${name})
endfunction()

function(lumen_executable name)
  cmake_parse_arguments(L "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${L_SRCS})
  target_link_libraries(${name} PRIVATE ${L_DEPS})
  lumen_common_options(${name})
endfunction()

# lumen_test(NAME SRCS ... DEPS ... LABELS unit|engine|integration|slow [TIMEOUT s])
# Unit tests are also collected in the `unit_tests` target (sanitizer builds).
# `engine`: unit tests of the model engines and the semantic cache, whose
# work is mostly libtorch, OpenCV, XGBoost, Tesseract and faiss: run with
# the others by ctest, left out of the sanitizer build to keep CI within its
# time (those headers take minutes to compile there).
function(lumen_test name)
  cmake_parse_arguments(L "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${L_SRCS})
  target_link_libraries(${name} PRIVATE ${L_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  lumen_common_options(${name})
  if(NOT L_TIMEOUT)
    set(L_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${L_LABELS}" TIMEOUT ${L_TIMEOUT})
  if("unit" IN_LIST L_LABELS)
    add_dependencies(unit_tests ${name})
  endif()
endfunction()
