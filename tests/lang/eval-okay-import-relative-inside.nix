(import ./lib).fromSub
