# The sluice .deb, built by CPack from every install() rule of the project:
# a program, man page or completion someone adds with install() is in the
# package without being named here. `cpack -G DEB` in the build tree (or
# `ninja package`) writes sluice_<version>_<arch>.deb.
#
# Debian specifics CPack does not do itself are done here: man pages and the
# changelog gzip'd (-9n) in the staged tree before it is packed
# (packaging/debian_tree.cmake), /etc/sluice/sluice.yaml a conffile, the
# copyright file, and the maintainer scripts that reload systemd and restart
# a running sluiced after an upgrade (packaging/postinst, prerm, postrm).

# Debian's per-package documentation: the copyright file, the README the unit
# points at, and the changelog (gzip'd when staged).
install(FILES ${PROJECT_SOURCE_DIR}/packaging/copyright ${PROJECT_SOURCE_DIR}/README.md
              ${PROJECT_SOURCE_DIR}/packaging/changelog
        DESTINATION share/doc/sluice)
# The operator's documentation beside it, under the same relative path as in
# the source, so README's links (docs/deploying.md, docs/architecture.svg)
# resolve in /usr/share/doc/sluice too. Not compressed: the links name the
# files as they are.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/sluice/docs
        FILES_MATCHING PATTERN "*.md" PATTERN "*.svg")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VERSION ${SLUICE_VERSION})
set(CPACK_PACKAGE_CONTACT "sluice developers <sluice@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "XDP packet filter, L4 load balancer and router")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "XDP packet filter, L4 load balancer and router\n"
    "sluice runs a stateful firewall (prefix lists, ordered rules, rate limits,\n"
    "connection tracking), a Maglev L4 load balancer with IP-in-IP\n"
    "encapsulation and a router (LPM and DIR-24-8, ECMP, route sync) in XDP.\n"
    "The package holds the daemon sluiced and its systemd unit, the CLI\n"
    "sluicectl, the backend-side sluice-decap and the benchmarks.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # sluice_<version>_<arch>.deb
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies from the binaries (dpkg-shlibdeps): libbpf, libxdp,
# libnl, libpcap, libyaml-cpp, libspdlog, libstdc++ ... Nothing else is run
# at run time: the BPF objects are embedded in the programs (skeletons),
# libxdp's dispatcher object comes with libxdp1, and sluiced mounts bpffs
# itself. init-system-helpers gives the maintainer scripts deb-systemd-invoke.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.52)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "iproute2")
# sluice-bench: xdp-filter is its filter peer, gnuplot draws --plots.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, prometheus, xdp-tools, gnuplot-nox")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/conffiles ${PROJECT_SOURCE_DIR}/packaging/postinst
    ${PROJECT_SOURCE_DIR}/packaging/prerm ${PROJECT_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)  # scripts 0755, the rest 0644
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/packaging/debian_tree.cmake)
# Only what install() put there: no source trees, no tests.
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
