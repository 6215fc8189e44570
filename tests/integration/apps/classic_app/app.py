import os
import sys

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(
        python=f"{sys.version_info[0]}.{sys.version_info[1]}", dyno=os.environ.get("DYNO")
    )
