# Run by `cmake --install` (CMakeLists.txt, "Installation") after the other files: writes the two
# installed files that are not copies, for the prefix given at install time (DESTDIR honoured).
#   PREFIX/lib/systemd/system/wasmq.service   wasmq.service.in with the prefix filled in
#   PREFIX/share/wasmq/broker.toml            config/broker.toml with data_dir /var/lib/wasmq
# WASMQ_PACKAGING_DIR (this folder) and WASMQ_CONFIG (config/broker.toml) are set by the caller.

get_filename_component(WASMQ_PREFIX "${CMAKE_INSTALL_PREFIX}" ABSOLUTE)

# Writes `content` to `path` under DESTDIR and the prefix, as install() does for its files.
function(wasmq_install_text path content)
  set(file "$ENV{DESTDIR}${WASMQ_PREFIX}/${path}")
  message(STATUS "Installing: ${file}")
  file(WRITE "${file}" "${content}")
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES "${WASMQ_PREFIX}/${path}")  # as install() lists them
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()

file(READ "${WASMQ_PACKAGING_DIR}/wasmq.service.in" unit)
string(CONFIGURE "${unit}" unit @ONLY)
wasmq_install_text(lib/systemd/system/wasmq.service "${unit}")

# The unit's StateDirectory is /var/lib/wasmq: the example keeps its data there instead of in
# ./data. A config/broker.toml without a data_dir line is an error, not a silent ./data.
file(READ "${WASMQ_CONFIG}" config)
string(REGEX REPLACE "\ndata_dir = \"[^\"\n]*\"" "\ndata_dir = \"/var/lib/wasmq\"" service_config
       "${config}")
if(service_config STREQUAL config)
  message(FATAL_ERROR "${WASMQ_CONFIG}: no line data_dir = \"...\" to point at /var/lib/wasmq")
endif()
string(REGEX REPLACE "^# wasmq:[^\n]*\n" "" service_config "${service_config}")
set(header "# wasmq as a service: copy this file to /etc/wasmq/broker.toml (the systemd unit
# ${WASMQ_PREFIX}/lib/systemd/system/wasmq.service reads it there) and adapt it;
# docs/operations.md, \"Install and run as a service\". Data goes to /var/lib/wasmq, the unit's
# StateDirectory; logs go to standard error, which systemd sends to the journal.
")
wasmq_install_text(share/wasmq/broker.toml "${header}${service_config}")
