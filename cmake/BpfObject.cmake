# bpf_object(NAME SOURCE [DEPENDS headers...])
# Compiles SOURCE (a *.bpf.c file) with clang for the BPF target against a vmlinux.h generated from the
# build machine's BTF, then generates a libbpf skeleton with bpftool. Creates an INTERFACE target
# NAME_skel whose include directory holds NAME.skel.h.
find_program(CLANG_EXE NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL_EXE NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(NETLAT_VMLINUX_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH
    "BTF file vmlinux.h is generated from (types only: CO-RE relocates them on every kernel)")
set(NETLAT_BPF_GEN_DIR "${CMAKE_BINARY_DIR}/bpf-gen")
file(MAKE_DIRECTORY "${NETLAT_BPF_GEN_DIR}")

function(bpf_object NAME SOURCE)
    cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
    get_filename_component(src "${SOURCE}" ABSOLUTE)
    get_filename_component(src_dir "${src}" DIRECTORY)
    set(obj "${NETLAT_BPF_GEN_DIR}/${NAME}.bpf.o")
    set(skel "${NETLAT_BPF_GEN_DIR}/${NAME}.skel.h")
    # Custom command outputs are visible only in the directory that defines them: vmlinux.h is made
    # here, next to the objects that include it.
    if(NOT TARGET netlat_vmlinux_h)
        add_custom_command(
            OUTPUT "${NETLAT_BPF_GEN_DIR}/vmlinux.h"
            COMMAND "${BPFTOOL_EXE}" btf dump file "${NETLAT_VMLINUX_BTF}" format c > vmlinux.h.tmp
            COMMAND ${CMAKE_COMMAND} -E rename vmlinux.h.tmp vmlinux.h
            WORKING_DIRECTORY "${NETLAT_BPF_GEN_DIR}"
            COMMENT "Generating vmlinux.h from ${NETLAT_VMLINUX_BTF}")
        add_custom_target(netlat_vmlinux_h DEPENDS "${NETLAT_BPF_GEN_DIR}/vmlinux.h")
    endif()
    # bpf_tracing.h reads kprobe arguments from the target architecture's pt_regs.
    if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
        set(bpf_arch arm64)
    elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
        set(bpf_arch x86)
    else()
        message(FATAL_ERROR "netlatd's BPF programs: no __TARGET_ARCH for ${CMAKE_SYSTEM_PROCESSOR}")
    endif()
    add_custom_command(
        OUTPUT "${obj}"
        COMMAND "${CLANG_EXE}" -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${bpf_arch}
                -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
                -I "${NETLAT_BPF_GEN_DIR}" -I "${src_dir}" -c "${src}" -o "${obj}"
        DEPENDS "${src}" "${NETLAT_BPF_GEN_DIR}/vmlinux.h" ${ARG_DEPENDS}
        COMMENT "Compiling BPF object ${NAME}"
        VERBATIM)
    add_custom_command(
        OUTPUT "${skel}"
        COMMAND "${BPFTOOL_EXE}" gen skeleton "${obj}" name "${NAME}" > "${skel}.tmp"
        COMMAND ${CMAKE_COMMAND} -E rename "${skel}.tmp" "${skel}"
        DEPENDS "${obj}"
        COMMENT "Generating BPF skeleton ${NAME}.skel.h"
        VERBATIM)
    add_custom_target(${NAME}_skel_gen DEPENDS "${skel}")
    add_dependencies(${NAME}_skel_gen netlat_vmlinux_h)
    add_library(${NAME}_skel INTERFACE)
    add_dependencies(${NAME}_skel ${NAME}_skel_gen)
    target_include_directories(${NAME}_skel INTERFACE "${NETLAT_BPF_GEN_DIR}")
endfunction()
