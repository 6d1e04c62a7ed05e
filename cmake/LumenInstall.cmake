# `cmake --install` lays out bin/ (lumen, lumen_worker), lib/ (one shared
# library per component), include/lumen/ and a CMake package, so that a
# project builds with find_package(lumen) and lumen::lumen.
include(CMakePackageConfigHelpers)

get_property(LUMEN_INSTALL_LIBS GLOBAL PROPERTY LUMEN_INSTALL_LIBS)
install(TARGETS ${LUMEN_INSTALL_LIBS}
  EXPORT lumenTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS lumen_cli lumen_worker RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/lumen DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT lumenTargets
  NAMESPACE lumen::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/lumen)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/lumenConfig.cmake.in
  ${PROJECT_BINARY_DIR}/lumenConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/lumen)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/lumenConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/lumenConfig.cmake ${PROJECT_BINARY_DIR}/lumenConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/lumen)
