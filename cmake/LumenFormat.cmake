# `ninja format` rewrites our C++ files with clang-format; `ninja check-format`
# fails when any of them drifts.
find_program(CLANG_FORMAT clang-format)
if(CLANG_FORMAT)
  file(GLOB_RECURSE LUMEN_FORMAT_FILES CONFIGURE_DEPENDS
    ${PROJECT_SOURCE_DIR}/include/*.h
    ${PROJECT_SOURCE_DIR}/common/*.h ${PROJECT_SOURCE_DIR}/common/*.cc
    ${PROJECT_SOURCE_DIR}/rpc/*.h ${PROJECT_SOURCE_DIR}/rpc/*.cc
    ${PROJECT_SOURCE_DIR}/scheduling/*.h ${PROJECT_SOURCE_DIR}/scheduling/*.cc
    ${PROJECT_SOURCE_DIR}/gcs/*.h ${PROJECT_SOURCE_DIR}/gcs/*.cc
    ${PROJECT_SOURCE_DIR}/node/*.h ${PROJECT_SOURCE_DIR}/node/*.cc
    ${PROJECT_SOURCE_DIR}/worker/*.h ${PROJECT_SOURCE_DIR}/worker/*.cc
    ${PROJECT_SOURCE_DIR}/cli/*.h ${PROJECT_SOURCE_DIR}/cli/*.cc
    ${PROJECT_SOURCE_DIR}/state/*.h ${PROJECT_SOURCE_DIR}/state/*.cc
    ${PROJECT_SOURCE_DIR}/dashboard/*.h ${PROJECT_SOURCE_DIR}/dashboard/*.cc
    ${PROJECT_SOURCE_DIR}/serve/*.h ${PROJECT_SOURCE_DIR}/serve/*.cc
    ${PROJECT_SOURCE_DIR}/models/*.h ${PROJECT_SOURCE_DIR}/models/*.cc
    ${PROJECT_SOURCE_DIR}/fuzz/*.cc
    ${PROJECT_SOURCE_DIR}/tests/*.h ${PROJECT_SOURCE_DIR}/tests/*.cc
    ${PROJECT_SOURCE_DIR}/bench/*.h ${PROJECT_SOURCE_DIR}/bench/*.cc
    ${PROJECT_SOURCE_DIR}/examples/*.h ${PROJECT_SOURCE_DIR}/examples/*.cc)
  add_custom_target(format COMMAND ${CLANG_FORMAT} -i ${LUMEN_FORMAT_FILES}
    COMMENT "clang-format -i" VERBATIM)
  add_custom_target(check-format COMMAND ${CLANG_FORMAT} --dry-run -Werror ${LUMEN_FORMAT_FILES}
    COMMENT "clang-format --dry-run -Werror" VERBATIM)
endif()

# `ninja tidy` runs clang-tidy (.clang-tidy) over lumen's sources.
find_program(CLANG_TIDY clang-tidy)
if(CLANG_TIDY)
  file(GLOB_RECURSE LUMEN_TIDY_FILES CONFIGURE_DEPENDS
    ${PROJECT_SOURCE_DIR}/common/*.cc ${PROJECT_SOURCE_DIR}/rpc/*.cc
    ${PROJECT_SOURCE_DIR}/scheduling/*.cc ${PROJECT_SOURCE_DIR}/gcs/*.cc
    ${PROJECT_SOURCE_DIR}/node/*.cc ${PROJECT_SOURCE_DIR}/worker/*.cc
    ${PROJECT_SOURCE_DIR}/cli/*.cc)
  add_custom_target(tidy COMMAND ${CLANG_TIDY} -p ${PROJECT_BINARY_DIR} --quiet ${LUMEN_TIDY_FILES}
    COMMENT "clang-tidy" VERBATIM)
endif()
