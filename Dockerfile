# hw in a container, k3d-style: each container is a node.
#
#   docker build -t hw .
#   docker network create hw
#   docker run --privileged -d --name hw --hostname hw --network hw -p 6443:6443 hw server --tls-san hw
#   docker run --privileged -d --name hw-agent1 --hostname hw-agent1 --network hw \
#       -e HW_URL=https://hw:6443 -e HW_TOKEN="$(docker exec hw cat /var/lib/hw/server/token)" hw agent
#
# README ("hw in Docker") explains each part.

# Build: the same `make build` as on a machine, so runc is linked statically
# against libseccomp and the pause image is built from source.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libseccomp-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# No .git in the build context: say which version this is.
ARG VERSION=v0.0.0-docker
ARG COMMIT=unknown
RUN make build VERSION=$VERSION COMMIT=$COMMIT

# Run: the host tools hw's node needs (see "Host tools" in README).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        iptables ipset nftables iproute2 conntrack mount util-linux ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/hw /usr/local/bin/hw
RUN ln -s hw /usr/local/bin/kubectl && ln -s hw /usr/local/bin/ctr
# Volumes, not the container's overlay filesystem: containerd's overlayfs
# snapshots cannot sit on overlayfs, and kubelet's pod volumes and the pods'
# logs should outlive the container.
VOLUME /var/lib/hw /var/lib/kubelet /var/lib/cni /var/log
ENV KUBECONFIG=/etc/hw/hw.yaml
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/hw"]
CMD ["server"]
