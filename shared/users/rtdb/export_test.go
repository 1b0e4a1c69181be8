package rtdb

// FlushWorkers is how many users a flush writes at once.
const FlushWorkers = readParallel
