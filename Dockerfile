FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# The processes run as this user, not root; numeric below, so a cluster's runAsNonRoot can verify it.
RUN groupadd --gid 1000 leadcrm && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin leadcrm
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
# collectstatic needs settings but no real secret or database.
RUN SECRET_KEY=collectstatic-only DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --no-input \
    && mkdir -p /app/media /app/var && chown -R 1000:1000 /app/media /app/var
# The code and static files stay root's and read-only; only uploads, exports and var/ are written.
USER 1000:1000
EXPOSE 8000
CMD ["gunicorn", "leadcrm.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
