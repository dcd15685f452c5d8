#!/bin/sh
echo "hello from a store path"
