set terminal pngcairo noenhanced size 960,600
set output 'filter-rules.png'
set title 'sluice-bench filter: ns/packet against rules'
set xlabel 'rules'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
set logscale x
$series0 << EOD
1 150 147 154
64 149 148 150
1024 146 145 147
4096 143 143 146
EOD
$series1 << EOD
1 151 151 156
64 155 153 160
1024 154 153 160
4096 150 149 153
EOD
$series2 << EOD
1 153 151 154
64 151 146 152
1024 151 150 155
4096 152 150 153
EOD
$floor << EOD
1 29
64 30
1024 28
4096 27
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, rule miss', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, first rule', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, last rule', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: empty XDP_DROP'
