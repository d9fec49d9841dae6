# syntax=docker/dockerfile:1
# RabbitMQ for the Compose stack, with the rabbitmq_delayed_message_exchange plugin ConduitLLM needs.
# The official image does not ship that plugin; this image adds the released .ez file (checksum
# verified) and enables it offline, so the broker starts with it.
#
#   npx zx scripts/build.ts --component rabbitmq        (no --source needed)
#
# The plugin's major.minor must match the broker's (v4.2.x plugin for RabbitMQ 4.2.x).
ARG RABBITMQ_IMAGE=rabbitmq:4.2-management@sha256:a2751b3b5eed89e47ebbd5e776de0d6d85d924002773933ab881da49c073b85d

FROM ${RABBITMQ_IMAGE}
ARG DELAYED_EXCHANGE_VERSION=4.2.0
ARG DELAYED_EXCHANGE_SHA256=f168b2c09810cde3726961d31f38e3408e6a7fbff3929908d6f962061d8e70a1
ARG VERSION=4.2-delayed
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/rabbitmq/rabbitmq-delayed-message-exchange
LABEL org.opencontainers.image.title="RabbitMQ with delayed message exchange" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}"
ADD https://github.com/rabbitmq/rabbitmq-delayed-message-exchange/releases/download/v${DELAYED_EXCHANGE_VERSION}/rabbitmq_delayed_message_exchange-${DELAYED_EXCHANGE_VERSION}.ez /opt/rabbitmq/plugins/
RUN plugin="/opt/rabbitmq/plugins/rabbitmq_delayed_message_exchange-${DELAYED_EXCHANGE_VERSION}.ez" \
 && echo "${DELAYED_EXCHANGE_SHA256}  ${plugin}" | sha256sum -c - \
 && chmod 0644 "${plugin}" \
 && rabbitmq-plugins enable --offline rabbitmq_delayed_message_exchange rabbitmq_prometheus
