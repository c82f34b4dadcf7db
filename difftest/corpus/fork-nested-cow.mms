a = mmap 0 1p rw private|anonymous
write $a 1 0x1
fork {
  write $a 1 0x2
  fork {
    read $a 1
    write $a 1 0x3
  }
  read $a 1
}
read $a 1
