# Two adjacent anonymous mappings with the same flags become one VMA.
r = mmap 0 8p none private|anonymous
a = mmap $r+2p 2p rw private|anonymous|fixed
b = mmap $r+4p 2p rw private|anonymous|fixed
maps
