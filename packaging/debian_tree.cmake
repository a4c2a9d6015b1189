# CPack pre-build script: makes the staged tree what Debian expects before it
# is packed. Man pages and the changelog are gzip'd with -9n (no name or time
# in the header: the same input gives the same bytes).
find_program(GZIP gzip REQUIRED)
file(GLOB_RECURSE to_compress
     "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/share/man/*"
     "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/share/doc/sluice/changelog")
foreach(file IN LISTS to_compress)
  if(file MATCHES "\\.gz$")
    continue()
  endif()
  execute_process(COMMAND ${GZIP} -9nf ${file} RESULT_VARIABLE gzip_result)
  if(NOT gzip_result EQUAL 0)
    message(FATAL_ERROR "gzip ${file}: ${gzip_result}")
  endif()
endforeach()
