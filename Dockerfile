# Worker / simulator image.  Build: docker build -t feedback-pipeline .
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
RUN pip install --no-cache-dir -c constraints.txt .
# Schemas are read from here at run time.
ENV PIPELINE_SCHEMA_DIR=/app/schemas PIPELINE_WEB_HOST=0.0.0.0
EXPOSE 6066 6070
ENTRYPOINT ["python", "-m", "pipeline"]
CMD ["worker"]
