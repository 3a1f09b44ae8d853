# Builds hw from source and runs it as the entrypoint:
#   docker build -t hw .
#   docker run --privileged -d --name hw -p 6443:6443 hw server
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        iptables nftables iproute2 conntrack mount ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/bin/hw /usr/local/bin/hw
RUN ln -s hw /usr/local/bin/kubectl && ln -s hw /usr/local/bin/ctr
VOLUME /var/lib/hw
ENTRYPOINT ["/usr/local/bin/hw"]
CMD ["server"]
