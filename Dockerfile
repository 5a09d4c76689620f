# syntax=docker/dockerfile:1

# ---- build ----------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Module cache: this layer is reused while go.mod/go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/connectord ./cmd/connectord

# ---- run ------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/connectord /connectord
USER nonroot:nonroot
# Listen on all interfaces inside the container.
ENV CONNECTORD_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/connectord"]
CMD ["serve"]
