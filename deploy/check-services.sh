#!/usr/bin/env bash
# Says in one line which local service does not answer, and how to start it.
set -u
ok=0
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "PostgreSQL does not answer on 127.0.0.1:5432; start it with: pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
  ok=1
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "RabbitMQ does not answer on 127.0.0.1:5672; start it with: rabbitmq-server -detached" >&2
  ok=1
fi
exit $ok
