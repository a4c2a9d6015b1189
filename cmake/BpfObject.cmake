# sluice_bpf_object(NAME) builds xdp/NAME.bpf.c into NAME.bpf.o (BTF kept)
# and NAME.skel.h (C++ names: struct NAME_bpf, NAME_bpf__open()), and defines the INTERFACE target NAME_skel that puts the
# skeleton on the include path. Dependencies come from clang's depfile, so a
# change to any header the BPF code includes (maps/sluice_maps.h, xdp/*.h)
# rebuilds exactly the objects that include it.
find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

execute_process(COMMAND uname -m OUTPUT_VARIABLE SLUICE_BPF_HOST_ARCH
                OUTPUT_STRIP_TRAILING_WHITESPACE)
set(SLUICE_BPF_ARCH_INCLUDE /usr/include/${SLUICE_BPF_HOST_ARCH}-linux-gnu)

set(SLUICE_BPF_CFLAGS
    -g -O2 -target bpf -mcpu=v3
    -Wall -Werror -Wno-unused-function
    -I${CMAKE_SOURCE_DIR}/maps -I${CMAKE_SOURCE_DIR}/xdp
    -I${SLUICE_BPF_ARCH_INCLUDE})

function(sluice_bpf_object name)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${name}.bpf.c)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(dep ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.d)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} ${SLUICE_BPF_CFLAGS} -MD -MF ${dep} -MT ${obj}
            -c ${src} -o ${obj}
    DEPENDS ${src}
    DEPFILE ${dep}
    COMMENT "BPF ${name}.bpf.c"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_bpf DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_bpf)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
  set_property(GLOBAL APPEND PROPERTY SLUICE_BPF_OBJECTS ${obj})
endfunction()
