(import ./lib).name
