# SPDX-License-Identifier: MIT
#
# shmreg_localized_archive(TARGET OBJLIB...)
#
# A static library TARGET that exports what the shared libraries export and
# nothing else.  An ordinary archive is a bag of objects whose hidden
# symbols stay global (hidden visibility only means "not exported from a
# shared object"), so a static consumer would see, and could collide with,
# every internal name (handoff, index_find, ring_append, ...).  Instead the
# objects of the object libraries OBJLIB... are linked into one relocatable
# object (ld -r), which resolves the internal references among them, and
# objcopy --localize-hidden then turns every hidden symbol - everything but
# the SHMREG_EXPORT API - into a local one.  The archive holds that single
# object.
#
# Works for gcc and clang builds alike (the objects are ordinary ELF
# whatever the compiler) and for sanitized ones: a sanitizer's own symbols
# are either default visibility (its runtime's entry points, left alone) or
# undefined here (section bounds the final link provides, which
# --localize-hidden does not touch).
if(CMAKE_LINKER)
  set(SHMREG_LD "${CMAKE_LINKER}")
else()
  find_program(SHMREG_LD NAMES ld REQUIRED)
endif()
if(CMAKE_OBJCOPY)
  set(SHMREG_OBJCOPY "${CMAKE_OBJCOPY}")
else()
  find_program(SHMREG_OBJCOPY NAMES objcopy REQUIRED)
endif()

function(shmreg_localized_archive TARGET)
  set(objs "")
  foreach(lib IN LISTS ARGN)
    list(APPEND objs "$<TARGET_OBJECTS:${lib}>")
  endforeach()
  set(out "${CMAKE_CURRENT_BINARY_DIR}/${TARGET}.o")
  add_custom_command(OUTPUT "${out}"
    COMMAND "${SHMREG_LD}" -r -o "${out}.r" ${objs}
    COMMAND "${SHMREG_OBJCOPY}" --localize-hidden "${out}.r" "${out}"
    COMMAND "${CMAKE_COMMAND}" -E rm -f "${out}.r"
    DEPENDS ${objs} ${ARGN}
    COMMAND_EXPAND_LISTS
    VERBATIM
    COMMENT "Linking ${TARGET}.o (internal symbols made local)")
  set_source_files_properties("${out}" PROPERTIES
    EXTERNAL_OBJECT TRUE GENERATED TRUE)
  add_library(${TARGET} STATIC "${out}")
  set_target_properties(${TARGET} PROPERTIES LINKER_LANGUAGE C)
endfunction()
