# profile-controller in the hermes image (s6-overlay v3). Not a whole Dockerfile: two pieces to
# paste into the hermes image's Dockerfile. This repository comes in as a named build context:
#
#   docker build --build-context profile-controller=/path/to/profile-controller ...
#
# config/samples/samples_test.go checks that these lines install every file of
# config/samples/s6-overlay/ where the scripts expect it.

# 1. A build stage, before the final stage.
FROM golang:1.26-bookworm AS profile-controller-build
WORKDIR /src
COPY --from=profile-controller . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/profile-controller ./cmd/profile-controller

# 2. In the final stage, after s6-overlay is installed and after the image's own
#    COPY docker/cont-init.d/ and COPY docker/s6-rc.d/.
COPY --from=profile-controller-build /out/profile-controller /usr/local/bin/profile-controller
COPY --from=profile-controller config/samples/hermes-image.yaml /etc/profile-controller/config.yaml
COPY --from=profile-controller config/samples/s6-overlay/cont-init.d/ /etc/cont-init.d/
COPY --from=profile-controller config/samples/s6-overlay/s6-rc.d/ /etc/s6-overlay/s6-rc.d/
COPY --from=profile-controller config/samples/s6-overlay/user-bundles.d/ /etc/s6-overlay/user-bundles.d/
# - 02-reconcile-profiles is upstream's boot pass; 02-profile-controller replaces it, and both
#   would fight over the same slots.
# - The s6-rc.d/user trap: when /etc/s6-overlay/s6-rc.d/user exists (s6-overlay up to 3.2.3.0
#   ships it; later versions keep reading it, and then ignore user-bundles.d entirely), the
#   user bundle is defined there, so the longrun is added there too. Without this the controller
#   never starts, and nothing says so.
# - The config file must be root-owned and not group- or world-writable, or the controller
#   refuses it (exit 2).
RUN set -eu; \
    rm -f /etc/cont-init.d/02-reconcile-profiles; \
    if [ -d /etc/s6-overlay/s6-rc.d/user ]; then \
        mkdir -p /etc/s6-overlay/s6-rc.d/user/contents.d; \
        : > /etc/s6-overlay/s6-rc.d/user/contents.d/profile-controller; \
    fi; \
    chown root:root /usr/local/bin/profile-controller /etc/profile-controller /etc/profile-controller/config.yaml; \
    chmod 0755 /usr/local/bin/profile-controller /etc/profile-controller \
        /etc/cont-init.d/02-profile-controller \
        /etc/s6-overlay/s6-rc.d/profile-controller/run \
        /etc/s6-overlay/s6-rc.d/profile-controller/finish; \
    chmod 0644 /etc/profile-controller/config.yaml
